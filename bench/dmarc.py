#!/usr/bin/env python3
"""Throughput and peak RSS of ``mailprobe dmarc import`` beside the parsedmarc CLI on the
same 1,000 aggregate reports, in one run.

    python bench/dmarc.py [--reports 1000] [--rounds 3] [--workdir /tmp/mailprobe-bench-dmarc]

The reports are generated once (seeded): 1 to 40 records each from a pool of 500 source
addresses and 10 reporters, a third of them gzipped, all for ``example.test``. Then,
interleaved, ``--rounds`` times each (the best round counts; the machine is shared):

* ``mailprobe dmarc import DIR`` into a fresh state file (parse, check, store in SQLite),
  once per ``--workers`` value (parser worker processes; default 1 and 2);
* ``parsedmarc --offline -s -o OUT DIR`` (parse, write aggregate.json/csv), one process
  as its CLI runs by default.

Both parse with parsedmarc offline. Wall time, CPU time and peak RSS come from GNU time
(``/usr/bin/time``) as the launcher: ``%M`` is the largest single process (a worker, or
the importer), not what a bench process that has grown would carry into its children.
The whole process tree's RSS is also sampled every 20 ms from /proc (workers added up),
printed as "tree peak". Each run's result is checked: 1,000 reports stored, 1,000 in
parsedmarc's aggregate.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"
DOMAIN = "example.test"
REPORTERS = [f"reporter{n}.test" for n in range(10)]


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float
    tree_mb: float


def record(rng: random.Random, pool: list[str]) -> str:
    dkim, spf = rng.choice([("pass", "pass"), ("pass", "fail"), ("fail", "fail")])
    return (
        f"<record><row><source_ip>{rng.choice(pool)}</source_ip>"
        f"<count>{rng.randint(1, 500)}</count><policy_evaluated><disposition>none"
        f"</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{DOMAIN}</header_from></identifiers><auth_results>"
        f"<dkim><domain>{DOMAIN}</domain><selector>s1</selector><result>{dkim}</result></dkim>"
        f"<spf><domain>{DOMAIN}</domain><result>{spf}</result></spf></auth_results></record>"
    )


def generate(folder: Path, count: int) -> None:
    rng = random.Random(1000)
    pool = [f"198.51.{n // 250}.{n % 250 + 1}" for n in range(500)]
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        org = rng.choice(REPORTERS)
        begin = 1_796_000_000 + n * 3600
        records = "".join(record(rng, pool) for _ in range(rng.randint(1, 40)))
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata>'
            f"<org_name>{org}</org_name><email>dmarc@{org}</email>"
            f"<report_id>bench-{n}</report_id><date_range><begin>{begin}</begin>"
            f"<end>{begin + 86399}</end></date_range></report_metadata><policy_published>"
            f"<domain>{DOMAIN}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p>"
            f"</policy_published>{records}</feedback>\n"
        ).encode()
        name = f"{org}!{DOMAIN}!{begin}!{begin + 86399}.xml"
        if n % 3 == 0:
            (folder / f"{name}.gz").write_bytes(gzip.compress(xml, mtime=0))
        else:
            (folder / name).write_bytes(xml)


def _tree_rss_kb(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_command(command: list[str], stdout: Path) -> Run:
    with (
        tempfile.NamedTemporaryFile("r", prefix="mailprobe-bench-time-") as report,
        stdout.open("wb") as out,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            [TIME, "--format", "%U %S %M", "--output", report.name, *command],
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        peak = [0]

        def sample() -> None:
            while process.poll() is None:
                peak[0] = max(peak[0], _tree_rss_kb(process.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        code = process.wait()
        wall = time.monotonic() - started
        sampler.join()
        user, system, max_kb = report.read().split()[-3:]
    if code not in (0, 1):
        raise RuntimeError(f"{command} exited with status {code}")
    return Run(wall, float(user) + float(system), int(max_kb) / 1024, peak[0] / 1024)


def run_ours(reports: Path, work: Path, count: int, workers: int) -> Run:
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    config = work / "mailprobe.yml"
    config.write_text(f"state_dir: {state}\ndmarc:\n  domains: [{DOMAIN}]\n  workers: {workers}\n")
    out = work / "ours.json"
    result = run_command(
        [
            sys.executable,
            "-m",
            "monitor",
            "dmarc",
            "import",
            "-c",
            str(config),
            "--format",
            "json",
            str(reports),
        ],
        out,
    )
    outcomes = json.loads(out.read_text())["outcomes"]
    if outcomes != {"new": count}:
        raise RuntimeError(f"mailprobe stored {outcomes}, not {count} new reports")
    return result


def run_parsedmarc(reports: Path, work: Path, count: int, _workers: int = 0) -> Run:
    output = work / "parsedmarc-out"
    shutil.rmtree(output, ignore_errors=True)
    parsedmarc = Path(sys.executable).with_name("parsedmarc")
    result = run_command(
        [str(parsedmarc), "--offline", "-s", "-o", str(output), str(reports)],
        work / "parsedmarc.stdout",
    )
    parsed = json.loads((output / "aggregate.json").read_text())
    if len(parsed) != count:
        raise RuntimeError(f"parsedmarc wrote {len(parsed)} aggregate reports, not {count}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mailprobe-bench-dmarc"))
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="mailprobe parser workers to run"
    )
    args = parser.parse_args()
    if shutil.which(TIME) is None:
        print("needs GNU time (Debian package time)", file=sys.stderr)
        return 3
    work = args.workdir
    reports = work / f"reports-{args.reports}"
    if not reports.is_dir():
        generate(reports, args.reports)
    tools: dict[str, tuple[Callable[[Path, Path, int, int], Run], int]] = {
        f"mailprobe ({n} worker{'s' if n > 1 else ''})": (run_ours, n) for n in args.workers
    }
    tools["parsedmarc --offline"] = (run_parsedmarc, 0)
    best: dict[str, Run] = {}
    for _ in range(args.rounds):
        for name, (runner, workers) in tools.items():
            run = runner(reports, work, args.reports, workers)
            if name not in best or run.wall < best[name].wall:
                best[name] = run
    base = best["parsedmarc --offline"]
    print(f"{args.reports} aggregate reports, best of {args.rounds} round(s)")
    print(
        f"{'tool':<24} {'reports/s':>10} {'wall s':>8} {'CPU s':>7} {'peak RSS MB':>12}"
        f" {'tree peak MB':>13}"
    )
    for name, run in best.items():
        print(
            f"{name:<24} {args.reports / run.wall:>10.1f} {run.wall:>8.2f} {run.cpu:>7.2f}"
            f" {run.rss_mb:>12.1f} {run.tree_mb:>13.1f}"
        )
    for name, run in best.items():
        if name == "parsedmarc --offline":
            continue
        print(
            f"{name} / parsedmarc: {base.wall / run.wall:.2f} x the reports/s, "
            f"{run.rss_mb / base.rss_mb:.2f} x the peak RSS (largest process), "
            f"{run.tree_mb / base.tree_mb:.2f} x the tree peak, "
            f"{run.cpu / base.cpu:.2f} x the CPU time"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
