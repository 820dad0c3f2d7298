#!/usr/bin/env python3
"""Throughput and peak RSS of ``mailprobe logs`` beside pflogsumm,
prometheus-postfix-exporter and mtail, on the same large file, in one run.

    python bench/logs.py [--lines 700000] [--rounds 3] [--workdir /tmp/mailprobe-bench]
    python bench/logs.py --file PATH [--rounds 3] [--workdir /tmp/mailprobe-bench]

Needs the Debian packages pflogsumm, prometheus-postfix-exporter and mtail, and gcc
with the Python headers for the mypyc build (deploy/apt-packages.txt). Each tool is
run as research §e describes:

* ``mailprobe logs FILE`` and ``pflogsumm FILE``: one-shot, output discarded; wall
  time, CPU time and peak RSS of each run measured by GNU time (``/usr/bin/time``) as
  its launcher (``run_command``). mailprobe runs twice over: from a copy
  of the source compiled by mypyc as ``scripts/setup.sh`` installs it (the reference
  row), and from a pure-Python copy (bench/trees.py).
* prometheus-postfix-exporter only tails: it is started on an empty file, the input is
  appended in one go, and the clock runs until ``postfix_qmgr_messages_removed_total``
  equals the file's ``qmgr ... removed`` lines (scraped every 50 ms on loopback).
* ``mtail --one_shot`` with Debian's stock ``examples/postfix.mtail``.

The common file has RFC 3164 stamps and ASCII only, because the stock mtail program
cannot parse RFC 3339 stamps and mtail stops at the first invalid UTF-8 byte (research
TL;DR 1-2). mailprobe additionally reads the RFC 3339 variant with raw client bytes,
as Debian 12's rsyslog writes them. Every tool runs ``--rounds`` times, interleaved;
the best round counts (the machine is shared).

``--file PATH`` measures a log of your own (e.g. the lab's, bench/lablog.py) instead of
the synthetic ones: mailprobe reads PATH as it is, and every tool (mailprobe too) reads
a common copy in which RFC 3339 stamps become RFC 3164 ones, a non-default syslog name
``postfix-NAME/...`` becomes ``postfix/...`` (the incumbents only know that name:
pflogsumm takes a single ``--syslog-name``, kumina's exporter and the stock mtail program
none) and bytes outside ASCII become ``?``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.maillog import generate
from bench.trees import source_tree

REFERENCE = "mailprobe logs (mypyc)"
"""The build scripts/setup.sh installs: the hot path compiled (setup.py)."""
PURE = "mailprobe logs (pure Python)"
MTAIL_PROGRAM = Path("/usr/share/doc/mtail/examples/postfix.mtail")
MONTHS = (
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Oct",
    b"Nov",
    b"Dec",
)
RFC3339 = re.compile(rb"^(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) ")
SYSLOG_NAME = re.compile(rb"^(\S+ +\S+ +\S+ +\S+ +)postfix-[\w.-]+/")
NOT_ASCII = re.compile(rb"[\x80-\xff]")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float


TIME = "/usr/bin/time"
"""GNU time: a small launcher whose ``wait4`` reports the tool's own peak RSS."""


def run_command(command: list[str], cwd: Path | None = None) -> Run:
    """Wall time, CPU time (with the tool's workers) and peak RSS of one run.

    The peak RSS comes from GNU time (``%M``), not from our own ``wait4``: a child
    started by this process inherits its high-water mark when it execs (Linux carries
    ``maxrss`` over ``exec``, and ``subprocess`` uses ``vfork``), so a bench that has
    grown to 200 MB would report at least 200 MB for ``true``. GNU time is a few
    hundred KB when it forks the tool. With worker processes, ``%M`` is the largest
    single process of the tool, not their sum.
    """
    with tempfile.NamedTemporaryFile("r", prefix="mailprobe-bench-time-") as report:
        started = time.monotonic()
        process = subprocess.run(
            [TIME, "--format", "%U %S %M", "--output", report.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            check=False,
        )
        wall = time.monotonic() - started
        if process.returncode != 0:
            raise RuntimeError(f"{command[0]} exited with status {process.returncode}")
        user, system, max_kb = report.read().split()[-3:]
    return Run(wall, float(user) + float(system), int(max_kb) / 1024)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _removed(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("postfix_qmgr_messages_removed_total"):
            return int(float(line.split()[-1]))
    return 0


def run_exporter(source: Path, workdir: Path, expected: int) -> Run:
    tailed = workdir / "tailed.log"
    tailed.write_bytes(b"")
    port = _free_port()
    process = subprocess.Popen(
        [
            "prometheus-postfix-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--postfix.logfile_path={tailed}",
            f"--postfix.showq_path={workdir / 'no-showq'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while _removed(port) < 0:
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus-postfix-exporter did not start")
            time.sleep(0.05)
        time.sleep(0.5)  # let it open and seek to the end of the empty file
        cpu_before = _cpu_seconds(process.pid)
        started = time.monotonic()
        with source.open("rb") as src, tailed.open("ab") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        deadline = started + 300
        while _removed(port) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus-postfix-exporter did not catch up")
            time.sleep(0.05)
        wall = time.monotonic() - started
        return Run(wall, _cpu_seconds(process.pid) - cpu_before, _peak_rss_mb(process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def common_line(line: bytes) -> bytes:
    """One line of a real log as every incumbent can read it (module docstring)."""
    stamp = RFC3339.match(line)
    if stamp is not None:
        day = int(stamp[3])
        bsd = b"%s %2d %s " % (MONTHS[int(stamp[2]) - 1], day, stamp[4])
        line = bsd + line[stamp.end() :]
    line = SYSLOG_NAME.sub(rb"\1postfix/", line, count=1)
    return NOT_ASCII.sub(b"?", line)


def prepare_file(workdir: Path, source: Path) -> tuple[Path, int]:
    """The common copy of ``source`` and its line count."""
    workdir.mkdir(parents=True, exist_ok=True)
    common = workdir / f"{source.stem}-common.log"
    lines = 0
    with source.open("rb") as src, common.open("wb") as out:
        for line in src:
            out.write(common_line(line))
            lines += 1
    return common, lines


def prepare(workdir: Path, lines: int) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    common = workdir / f"mail-{lines}-bsd-ascii.log"
    native = workdir / f"mail-{lines}-rfc3339.log"
    for path, fmt, ascii_only in ((common, "bsd", True), (native, "rfc3339", False)):
        if not path.exists():  # written whole or not at all: an interrupted run leaves no stub
            partial = path.with_name(path.name + ".part")
            with partial.open("wb") as out:
                out.writelines(generate(lines, fmt, ascii_only))
            partial.replace(path)
    return common, native


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=700_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mailprobe-bench"))
    parser.add_argument("--file", type=Path, help="measure this log instead of synthetic ones")
    args = parser.parse_args()
    if args.file is not None:
        native = args.file
        common, args.lines = prepare_file(args.workdir, args.file)
    else:
        common, native = prepare(args.workdir, args.lines)
    removed = sum(
        1 for line in common.open("rb") if b"/qmgr[" in line and line.endswith(b": removed\n")
    )
    progs = args.workdir / "mtail-progs"
    progs.mkdir(exist_ok=True)
    shutil.copy(MTAIL_PROGRAM, progs / "postfix.mtail")
    mailprobe = [sys.executable, "-m", "monitor", "logs"]
    common, native = common.resolve(), native.resolve()
    trees = {
        "mypyc": source_tree(args.workdir / "tree-mypyc", compiled=True),
        "pure Python": source_tree(args.workdir / "tree-pure", compiled=False),
    }

    def mailprobe_logs(build: str, *options: str, file: Path) -> Callable[[], Run]:
        return lambda: run_command([*mailprobe, *options, str(file)], cwd=trees[build])

    tools: list[tuple[str, str, Callable[[], Run]]] = [
        (REFERENCE, common.name, mailprobe_logs("mypyc", file=common)),
        (f"{REFERENCE} --jobs 1", common.name, mailprobe_logs("mypyc", "--jobs", "1", file=common)),
        (REFERENCE, native.name, mailprobe_logs("mypyc", file=native)),
        (PURE, common.name, mailprobe_logs("pure Python", file=common)),
        (
            f"{PURE} --jobs 1",
            common.name,
            mailprobe_logs("pure Python", "--jobs", "1", file=common),
        ),
        ("pflogsumm", common.name, lambda: run_command(["pflogsumm", str(common)])),
        (
            "prometheus-postfix-exporter",
            common.name,
            lambda: run_exporter(common, args.workdir, removed),
        ),
        (
            "mtail --one_shot",
            common.name,
            lambda: run_command(
                ["mtail", "--one_shot", "--progs", str(progs), "--logs", str(common)]
            ),
        ),
    ]
    best: dict[tuple[str, str], Run] = {}
    for _round in range(args.rounds):
        for name, file_name, measure in tools:
            run = measure()
            key = (name, file_name)
            if key not in best or run.wall < best[key].wall:
                best[key] = run

    reference = best[(REFERENCE, common.name)].wall
    print(f"{args.lines} lines per file, best of {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(
        f"{'tool':<30} {'file':<32} {'wall s':>7} {'lines/s':>9} {'CPU s':>7}"
        f" {'peak RSS MB':>11} {'wall / mailprobe':>16}"
    )
    for (name, file_name), run in best.items():
        print(
            f"{name:<30} {file_name:<32} {run.wall:>7.2f} {args.lines / run.wall:>9.0f}"
            f" {run.cpu:>7.2f} {run.rss_mb:>11.1f} {run.wall / reference:>16.2f}"
        )
    pflogsumm = best[("pflogsumm", common.name)].wall
    kumina = best[("prometheus-postfix-exporter", common.name)].wall
    for name in (REFERENCE, PURE):
        wall = best[(name, common.name)].wall
        print(
            f"{name}: {wall / pflogsumm:.2f} x pflogsumm's wall time,"
            f" {kumina / wall:.2f} x prometheus-postfix-exporter's line rate"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
