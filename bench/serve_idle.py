#!/usr/bin/env python3
"""``/metrics`` while idle and slow clients hold connections: mailprobe serve beside
blackbox_exporter (Go's net/http via exporter-toolkit), both under systemd's default
open-file limit.

    python bench/serve_idle.py [--idle 1100] [--slow 100] [--scrapes 20] [--watch 20]

Each server runs under ``prlimit --nofile=1024`` on 127.0.0.1 with its default settings
(mailprobe: an empty config, so ``web`` defaults; blackbox_exporter: a one-module config,
no flags but that file and the listen address). The bench then opens ``--idle`` connections that
send nothing (one ``connect`` at a time, given up after 0.5 s), ``--slow`` more that send
a request header one byte every 0.25 s, and scrapes ``/metrics`` ``--scrapes`` times
(5 s timeout each, a fresh connection each). Printed per tool: connections made, scrapes
answered and their latency, the server's open descriptors, how much it logged, and how
many idle and slow clients it had closed after ``--watch`` seconds. No pass/fail: the
figures are for docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
HEADER = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000


@dataclass
class Figures:
    connected: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    idle: int = 0
    slow: int = 0
    fds_under_attack: int = 0
    log_bytes: int = 0
    idle_closed: int = 0
    slow_closed: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def connect_many(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection((HOST, port), timeout=0.5)
        except OSError:
            continue
        sock.setblocking(False)
        socks.append(sock)
    return socks


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited {process.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        time.sleep(0.1)
    raise SystemExit("server did not listen")


def attack(command: list[str], port: int, log: Path, args: argparse.Namespace) -> Figures:
    figures = Figures()
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["prlimit", "--nofile=1024", "--", *command], stdout=out, stderr=out
        )
    try:
        wait_listening(port, process)
        time.sleep(0.5)
        base = log.stat().st_size
        idle = connect_many(port, args.idle)
        slow = connect_many(port, args.slow)
        figures.connected = len(idle) + len(slow)
        figures.idle, figures.slow = len(idle), len(slow)
        started = time.monotonic()
        sent = 0
        for _ in range(args.scrapes):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(HEADER[sent : sent + 1])
            sent = min(sent + 1, len(HEADER) - 1)
            begun = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).status_code == 200:
                    figures.answered += 1
                    figures.latencies.append(time.monotonic() - begun)
            time.sleep(0.25)
        figures.fds_under_attack = len(os.listdir(f"/proc/{process.pid}/fd"))
        while time.monotonic() - started < args.watch:
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(HEADER[sent : sent + 1])
            sent = min(sent + 1, len(HEADER) - 1)
            time.sleep(0.25)
        figures.idle_closed = sum(closed(sock) for sock in idle)
        figures.slow_closed = sum(closed(sock) for sock in slow)
        figures.log_bytes = log.stat().st_size - base
        for sock in idle + slow:
            sock.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return figures


def row(name: str, f: Figures, args: argparse.Namespace) -> str:
    lat = f.latencies
    latency = f"{statistics.median(lat) * 1000:.0f} / {max(lat) * 1000:.0f}" if lat else "-"
    return (
        f"| {name} | {f.connected} | {f.answered} of {args.scrapes} | {latency} | "
        f"{f.fds_under_attack} | {f.log_bytes:,} | {f.idle_closed} of {f.idle} | "
        f"{f.slow_closed} of {f.slow} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1100)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--watch", type=float, default=20.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.idle + args.slow + 200
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    work = Path(tempfile.mkdtemp(prefix="mailprobe-bench-serve-"))
    config = work / "mailprobe.yml"
    config.write_text("{}\n", encoding="utf-8")
    port = free_port()
    tools = {
        "mailprobe serve": (
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--config",
                str(config),
                "--listen",
                f"{HOST}:{port}",
            ],
            port,
        ),
    }
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if blackbox:
        other = free_port()
        modules = work / "blackbox.yml"
        modules.write_text("modules:\n  tcp:\n    prober: tcp\n", encoding="utf-8")
        tools["blackbox_exporter"] = (
            [blackbox, f"--config.file={modules}", f"--web.listen-address={HOST}:{other}"],
            other,
        )
    print(
        f"{args.idle} idle + {args.slow} slow clients, {args.scrapes} scrapes, "
        f"watched {args.watch:g} s, each server under prlimit --nofile=1024"
    )
    print(
        "| server | connected | scrapes answered | latency median / max ms | fds under attack "
        "| log bytes | idle closed (of connected) | slow closed (of connected) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (command, tool_port) in tools.items():
        figures = attack(command, tool_port, work / f"{name.split()[0]}.log", args)
        print(row(name, figures, args), flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
