"""Canary scale: N canaries in flight through the lab on one mailbox; detection delay.

    python bench/canary.py --lab-dir /tmp/canary-bench-lab --net 127.86.0.0/24 --count 200

Starts a lab in ``--lab-dir`` (or uses the one running there), then sends ``--count``
canaries on the lab's ``outbound-submission`` route (587, SASL; ``--concurrency`` SMTP
sessions at a time) and waits until every one has an outcome. So that all of them are in
flight at once, the lab's ``world-defers-all`` fault holds them in the submission host's
queue while they are sent; then it is healed and the queue flushed, and the canaries
reach the mailbox in one burst (``--no-hold`` sends without it). Detection delay is measured
against the moment Dovecot stored each canary: a child process watches the mailbox's
Maildir ``new/`` with inotify (IN_MOVED_TO, the rename that makes a delivered mail
visible) and records the time; mailprobe records when its IDLE session saw the canary.
Canaries are archived (UID MOVE), not deleted, so the inotify child can read each file.

Two rounds side by side: mailprobe's IDLE watcher, and the same watcher with IDLE
hidden and its busy rescan set to 5 s, which then polls with NOOP + UID SEARCH every 5 s
as the polling canary tools do (research/e2e-dmarc.md §1: mailexporter,
check_email_delivery). CPU (user+sys) and peak
RSS are this process's (the runtime runs in it; the inotify child is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporters.canary import watcher as watcher_module
from exporters.imap import ImapSession
from monitor.canary.service import CanaryService
from monitor.config import parse_config
from monitor.lab import Lab
from monitor.lab.mailconfig import config_data

ARCHIVE = "Archive"
HOLD_FAULT = "world-defers-all"
ROUTE = "outbound-submission"

INOTIFY_CHILD = r"""
import ctypes, os, struct, sys, time
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IN_MOVED_TO, IN_CREATE = 0x80, 0x100
fd = libc.inotify_init1(0)
if libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_MOVED_TO | IN_CREATE) < 0:
    sys.exit("inotify_add_watch failed")
print("ready", flush=True)
while True:
    data = os.read(fd, 65536)
    now = time.time()
    at = 0
    while at < len(data):
        _wd, _mask, _cookie, size = struct.unpack_from("iIII", data, at)
        name = data[at + 16 : at + 16 + size].rstrip(b"\0").decode()
        at += 16 + size
        print(name, now, flush=True)
"""
TOKEN = re.compile(rb"X-Mailprobe-Canary: [A-Za-z0-9_-]+\.([a-z0-9]{16})\.")


def canary_files(maildir: Path) -> dict[str, str]:
    """Maildir base name (before ``:``) -> canary id, over every folder (archived too)."""
    found: dict[str, str] = {}
    for path in maildir.rglob("*"):
        if path.parent.name not in ("new", "cur") or not path.is_file():
            continue
        with path.open("rb") as handle:
            match = TOKEN.search(handle.read(8192))
        if match:
            found[path.name.split(":")[0]] = match.group(1).decode()
    return found


def _no_name_check(lab: Lab) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    context.check_hostname = False  # the lab's certificate has the address as a SAN too
    return context


def bench_config(lab: Lab, state: Path, poll: bool) -> Any:
    data = config_data(lab)
    canary = data["canary"]
    canary["key_file"] = str(state / "canary.key")
    canary["mailboxes"][0]["archive_folder"] = ARCHIVE
    if poll:
        canary["mailboxes"][0]["junk_poll_interval"] = 5.0
    canary["routes"] = [r for r in canary["routes"] if r["name"] == ROUTE]
    canary["routes"][0].update(deadline=300, grace=60)
    config = {"state_dir": str(state), "dns": {"resolvers": data["dns"]["resolvers"]},
              "canary": canary}  # fmt: skip
    return parse_config(yaml.safe_dump(config))


async def one_round(
    lab: Lab, count: int, concurrency: int, poll: bool, hold: bool
) -> dict[str, Any]:
    maildir = lab.dir / "dovecot" / "mail" / lab.credentials("canary").username / "Maildir"
    child = subprocess.Popen(
        [sys.executable, "-c", INOTIFY_CHILD, str(maildir / "new")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    original = ImapSession.capabilities
    rescan = watcher_module.BUSY_RESCAN
    if poll:
        watcher_module.BUSY_RESCAN = 5.0
        ImapSession.capabilities = property(  # type: ignore[method-assign,assignment]
            lambda self: frozenset(original.fget(self)) - {"IDLE"}  # type: ignore[attr-defined]
        )
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="canary-bench-") as state:
            service = CanaryService(bench_config(lab, Path(state), poll))
            runtime = await service.acquire()
            limit = asyncio.Semaphore(concurrency)
            peak = 0

            async def send() -> str:
                nonlocal peak
                async with limit:
                    entry = await runtime.send(ROUTE)
                    peak = max(peak, runtime.in_flight())
                return entry.id

            if hold:  # every canary queued at the submission host: all in flight at once
                lab.break_fault(HOLD_FAULT)
            try:
                ids = await asyncio.gather(*(send() for _ in range(count)))
            finally:
                if hold:
                    lab.heal_fault(HOLD_FAULT)
            if hold:
                flush = ["postqueue", "-c", str(lab.postfix_config_dir("submission")), "-f"]
                subprocess.run(flush, capture_output=True, timeout=30, check=False)
            for ident in ids:
                await runtime.wait(ident, time.time() + 300)
            entries = [runtime.entry(i) for i in ids]
            await service.release()
    finally:
        ImapSession.capabilities = original  # type: ignore[method-assign]
        watcher_module.BUSY_RESCAN = rescan
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.5)
    child.terminate()
    out, _ = child.communicate(timeout=10)
    names = canary_files(maildir)
    stored: dict[str, float] = {}
    for line in out.splitlines():
        name, when = line.rsplit(" ", 1)
        ident = names.get(name.split(":")[0])
        if ident is not None:
            stored.setdefault(ident, float(when))
    outcomes: dict[str, int] = {}
    delays = []
    for entry in entries:
        assert entry is not None
        outcomes[entry.state] = outcomes.get(entry.state, 0) + 1
        seen = entry.detail.get("detected_at")
        if entry.id in stored and isinstance(seen, float):
            delays.append(seen - stored[entry.id])
    delays.sort()
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    return {
        "mode": "poll 5 s" if poll else "IDLE",
        "outcomes": outcomes,
        "measured": len(delays),
        "peak_in_flight": peak,
        "p50": statistics.median(delays) if delays else float("nan"),
        "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("nan"),
        "max": delays[-1] if delays else float("nan"),
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--net", required=True, help="the lab's /24, e.g. 127.86.0.0/24")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--no-hold",
        action="store_true",
        help=f"send without first holding the canaries at the submission host ({HOLD_FAULT})",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.lab_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(args.lab_dir, 0o755)
    lab = Lab(args.lab_dir, net=args.net)
    if lab.state() is None:
        lab.up()
    imap = imaplib.IMAP4_SSL(lab.hosts["imap"].address, 993, ssl_context=_no_name_check(lab))
    creds = lab.credentials("canary")
    imap.login(creds.username, creds.password())
    imap.create(ARCHIVE)
    imap.logout()
    rows = [
        asyncio.run(one_round(lab, args.count, args.concurrency, poll, not args.no_hold))
        for poll in (False, True)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    idle, poll = rows
    print(f"{args.count} canaries, {args.concurrency} SMTP sessions at a time, one mailbox")
    print(f"{'':24}{'IDLE':>12}{'poll 5 s':>12}{'poll/IDLE':>11}")
    for key, label, unit in (
        ("p50", "detection p50", "s"), ("p99", "detection p99", "s"), ("max", "detection max", "s"),
        ("cpu_seconds", "CPU (user+sys)", "s"), ("wall_seconds", "wall", "s"),
        ("peak_rss_mb", "peak RSS", "MB"),
    ):  # fmt: skip
        a, b = idle[key], poll[key]
        ratio = b / a if a else float("nan")
        print(f"{label:24}{a:>10.3f}{unit:>2}{b:>10.3f}{unit:>2}{ratio:>10.1f}x")
    for row in rows:
        print(f"{row['mode']}: outcomes {row['outcomes']}, measured {row['measured']}, "
              f"peak in flight {row['peak_in_flight']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
