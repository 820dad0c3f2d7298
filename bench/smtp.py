#!/usr/bin/env python3
"""SMTP probes per second: mailprobe's `/probe` beside prometheus-blackbox-exporter's
`smtp_starttls` module, against the same lab Postfix, driven the same way.

    python bench/smtp.py [--probes 1000] [--concurrency 50] [--rounds 1]
                         [--workdir /tmp/mailprobe-bench-smtp] [--net 127.91.0.0/24]
                         [--lab-dir DIR] [--in-process]

Starts a lab of its own (``WORKDIR/lab`` in ``--net`` or $MAILPROBE_LAB_NET), or uses a
running one given with ``--lab-dir``. Then, for each tool in turn, it starts the tool as
an HTTP server on 127.0.0.1, sends 50 warm-up probes, and then ``--probes`` probes of the
MX (``127.x.0.10:25``), ``--concurrency`` at a time, from one asyncio HTTP client in this
process (the driver is the same for both and is not measured). Measured per tool, from
its own process only: wall time, probes/s, CPU seconds (user + system, from
/proc/PID/stat, for the measured probes), peak RSS (VmHWM, whole run), and how many
probes reported success.

What each probe does:
- mailprobe (`smtp.modules.smtp_starttls`): connect, banner, EHLO, STARTTLS, EHLO, QUIT;
  TLSA lookup through the lab's validating resolver; PKIX validation against the lab
  CA; DANE matching (RFC 7672); a reasoned verdict and ~70 series.
- blackbox_exporter (`prober: tcp` with `query_response` and `starttls`, its documented
  SMTP STARTTLS example): connect, banner, EHLO, STARTTLS, EHLO, QUIT with PKIX
  validation against the same CA. No DANE.

The machine is shared: run it when nothing else is heavy, and read the figures as a
ratio measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.lab import Lab

BLACKBOX = "prometheus-blackbox-exporter"
MODULE = "smtp_starttls"
WARMUP = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Tool:
    name: str
    argv: list[str]
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.workdir / (self.name + '.log')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not listen within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    def peak_rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def mailprobe_tool(lab: Lab, workdir: Path) -> Tool:
    port = free_port()
    mx = lab.hosts["mx"]
    config = {
        "listen": f"127.0.0.1:{port}",
        "state_dir": str(workdir / "state"),
        "dns": {"resolvers": [{"address": lab.resolver}]},
        "smtp": {
            "ca_file": str(lab.ca_file),
            "modules": {
                MODULE: {
                    "tls": "starttls",
                    "server_name": mx.name,
                    "dane": "required",
                    "pkix": "required",
                    "ehlo_name": "prober.invalid",
                    "timeout": 10,
                }
            },
        },
    }
    path = workdir / "mailprobe.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    argv = [sys.executable, "-m", "monitor", "serve", "--config", str(path)]
    return Tool("mailprobe", argv, port, workdir)


def blackbox_tool(lab: Lab, workdir: Path) -> Tool:
    port = free_port()
    mx = lab.hosts["mx"]
    # blackbox_exporter's documented smtp_starttls example, with the lab's CA and name.
    config = {
        "modules": {
            MODULE: {
                "prober": "tcp",
                "timeout": "10s",
                "tcp": {
                    "query_response": [
                        {"expect": "^220 ([^ ]+) ESMTP (.+)$"},
                        {"send": "EHLO prober.invalid\r"},
                        {"expect": "^250-STARTTLS"},
                        {"send": "STARTTLS\r"},
                        {"expect": "^220"},
                        {"starttls": True},
                        {"send": "EHLO prober.invalid\r"},
                        {"expect": "^250 "},
                        {"send": "QUIT\r"},
                        {"expect": "^221"},
                    ],
                    "tls_config": {"ca_file": str(lab.ca_file), "server_name": mx.name},
                },
            }
        }
    }
    path = workdir / "blackbox.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    argv = [BLACKBOX, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}"]
    return Tool("blackbox_exporter", argv, port, workdir)


async def drive(tool: Tool, target: str, probes: int, concurrency: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{tool.port}/probe"
    params = {"target": target, "module": MODULE}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ok = 0
    failures: dict[str, int] = {}
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def worker() -> None:
            nonlocal ok
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                answer = await client.get(url, params=params)
                if "\nprobe_success 1" in answer.text:
                    ok += 1
                else:
                    key = f"HTTP {answer.status_code}"
                    failures[key] = failures.get(key, 0) + 1

        for n in range(WARMUP):
            queue.put_nowait(n)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        ok = 0
        failures.clear()
        for n in range(probes):
            queue.put_nowait(n)
        cpu = tool.cpu_seconds()
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - started
        cpu = tool.cpu_seconds() - cpu
    return {
        "tool": tool.name,
        "probes": probes,
        "ok": ok,
        "failures": failures,
        "wall_seconds": round(wall, 3),
        "probes_per_second": round(probes / wall, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_probe": round(1000 * cpu / probes, 2),
        "peak_rss_mb": round(tool.peak_rss_bytes() / 2**20, 1),
    }


async def in_process(lab: Lab, probes: int, concurrency: int) -> dict[str, Any]:
    """The same probe as mailprobe's module, called directly in this process: no HTTP,
    no exposition. Shows how much of /probe's cost is the probe itself."""
    import resource

    from exporters.dns.resolver import StubResolver
    from exporters.dns.transport import Server
    from exporters.result import Phase
    from exporters.smtp.probe import ProbeSettings, probe_host

    mx = lab.hosts["mx"]
    resolver = StubResolver([Server(lab.resolver)], timeout=2.0)
    settings = ProbeSettings(
        port=25,
        family="ipv4",
        server_name=mx.name,
        ehlo_name="prober.invalid",
        dane="required",
        ca_file=lab.ca_file,
    )
    slots = asyncio.Semaphore(concurrency)
    ok = 0

    async def one() -> None:
        nonlocal ok
        async with slots:
            outcome = await probe_host(mx.address, settings, resolver, Phase())
        ok += outcome.status.value == "ok"

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    await asyncio.gather(*(one() for _ in range(WARMUP)))
    ok = 0
    started, cpu0 = time.monotonic(), cpu()
    await asyncio.gather(*(one() for _ in range(probes)))
    wall, used = time.monotonic() - started, cpu() - cpu0
    return {
        "tool": "mailprobe probe_host in-process (no HTTP)",
        "probes": probes,
        "ok": ok,
        "wall_seconds": round(wall, 3),
        "probes_per_second": round(probes / wall, 1),
        "cpu_seconds": round(used, 2),
        "cpu_ms_per_probe": round(1000 * used / probes, 2),
    }


def debug_view(tool: Tool, target: str) -> str:
    answer = httpx.get(
        f"http://127.0.0.1:{tool.port}/probe",
        params={"target": target, "module": MODULE, "debug": "true"},
        timeout=30,
    )
    return answer.text


def table(rows: list[dict[str, Any]]) -> str:
    ours = next(r for r in rows if r["tool"] == "mailprobe")
    theirs = next(r for r in rows if r["tool"] == "blackbox_exporter")
    lines = [
        f"{'':22} {'mailprobe':>12} {'blackbox':>12} {'ratio':>8}",
    ]
    for key, label, better in (
        ("probes_per_second", "probes/s", "higher"),
        ("cpu_ms_per_probe", "CPU ms/probe", "lower"),
        ("peak_rss_mb", "peak RSS MB", "lower"),
        ("wall_seconds", "wall s", "lower"),
    ):
        a, b = float(ours[key]), float(theirs[key])
        ratio = a / b if b else float("nan")
        lines.append(f"{label:22} {a:12g} {b:12g} {ratio:7.2f}x  ({better} is better)")
    lines.append(f"{'ok probes':22} {ours['ok']:12} {theirs['ok']:12}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the tools this often")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mailprobe-bench-smtp"))
    parser.add_argument("--net", default=os.environ.get("MAILPROBE_LAB_NET", "127.91.0.0/24"))
    parser.add_argument("--lab-dir", type=Path, help="use this running lab instead")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also time the probe function alone in this process (no HTTP, no exposition)",
    )
    args = parser.parse_args()
    if shutil.which(BLACKBOX) is None:
        raise SystemExit(f"{BLACKBOX} is missing (Debian package {BLACKBOX})")
    args.workdir.mkdir(parents=True, exist_ok=True)
    own_lab = args.lab_dir is None
    lab = Lab(args.workdir / "lab" if own_lab else args.lab_dir, net=args.net)
    if own_lab:
        lab.up()
    target = f"{lab.hosts['mx'].address}:25"
    tools = [mailprobe_tool(lab, args.workdir), blackbox_tool(lab, args.workdir)]
    results: list[dict[str, Any]] = []
    try:
        for tool in tools:
            tool.start()
        # What each probe checks, shown once: the verdicts must hold before timing them.
        ours = debug_view(tools[0], target)
        if "DANE: verified" not in ours or "PKIX: valid" not in ours:
            raise SystemExit(f"mailprobe's probe does not verify DANE and PKIX:\n{ours}")
        theirs = debug_view(tools[1], target)
        if "probe_success 1" not in theirs:
            raise SystemExit(f"blackbox_exporter's probe fails:\n{theirs}")
        for _ in range(args.rounds):
            for tool in tools:
                results.append(asyncio.run(drive(tool, target, args.probes, args.concurrency)))
        if args.in_process:
            alone = asyncio.run(in_process(lab, args.probes, args.concurrency))
    finally:
        for tool in tools:
            tool.stop()
        if own_lab:
            lab.down()
    for round_start in range(0, len(results), 2):
        print(table(results[round_start : round_start + 2]))
        print()
    if args.in_process:
        print(
            f"{alone['tool']}: {alone['probes_per_second']} probes/s, "
            f"{alone['cpu_ms_per_probe']} CPU ms/probe, {alone['ok']} ok\n"
        )
        results.append(alone)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
