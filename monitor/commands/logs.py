"""``mailprobe logs``: a one-shot report over Postfix log files, pflogsumm-style."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from exporters.postfix_logs.envelope import Clock
from exporters.postfix_logs.settings import LogSettings
from exporters.postfix_logs.trace import TraceLine
from monitor.commands.common import (
    EXIT_CANNOT_RUN,
    add_config_option,
    config_path,
    print_config_error,
)
from monitor.logs.engine import Analysis, Options, analyse, trace
from monitor.logs.reader import Part, split, total_bytes
from monitor.logs.report import build, render_text

EXIT_NOT_FOUND = 1
PROGRESS_MIN_BYTES = 8 << 20
"""Below this much input the report is quicker than a progress bar is useful."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="summarise Postfix logs (pflogsumm-style) or trace one message",
        description="Read Postfix log files (plain or .gz; '-' or none for stdin) once and"
        " print a summary: traffic, rejects, deferrals, bounces, TLS, SASL, warnings.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="log files; '-' is stdin")
    add_config_option(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--since", metavar="T", type=parse_time, help="ISO time, 'today', or '2h'/'3d' ago"
    )
    parser.add_argument("--until", metavar="T", type=parse_time, help="as --since; exclusive")
    parser.add_argument(
        "--show-unsupported",
        action="store_true",
        help="also print the Postfix lines no parser understood",
    )
    parser.add_argument(
        "--trace", metavar="ID", help="print the path of one message (message-id or queue ID)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes for big files (default: up to 2)",
    )
    parser.set_defaults(func=_run)


_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> float:
    """ISO 8601 (naive means local time), ``today``/``yesterday``, or ``<n>[smhd]`` ago."""
    now = datetime.now()
    if text in ("today", "yesterday"):
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - timedelta(days=1 if text == "yesterday" else 0)).timestamp()
    m = _RELATIVE.fullmatch(text.lstrip("-"))
    if m is not None:
        return now.timestamp() - float(m[1]) * _UNITS[m[2]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time, 'today', 'yesterday' or a duration like 2h"
        ) from None


def _settings(args: argparse.Namespace) -> LogSettings | None:
    """The config's ``logs`` section if a config is given or present, else defaults."""
    path = config_path(args.config)
    if args.config is None and "MAILPROBE_CONFIG" not in os.environ and not path.exists():
        return LogSettings()
    from monitor.config import ConfigError, load_config
    from monitor.logs import log_settings

    try:
        return log_settings(load_config(path).logs)
    except ConfigError as error:
        print_config_error(error)
        return None


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CANNOT_RUN
    if not args.files and sys.stdin.isatty():
        print("mailprobe logs: give log files, or pipe a log into stdin", file=sys.stderr)
        return EXIT_CANNOT_RUN
    names = args.files or ["-"]
    paths = [Path(n) for n in names if n != "-"]
    for path in paths:
        problem = unreadable(path)
        if problem is not None:
            print(f"mailprobe logs: {path}: {problem}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    if names.count("-") > 1:
        print("mailprobe logs: stdin ('-') given twice", file=sys.stderr)
        return EXIT_CANNOT_RUN
    reference = max((p.stat().st_mtime for p in paths), default=None)
    if "-" in names or reference is None:
        reference = datetime.now().timestamp()
    window = None if args.since is None and args.until is None else (args.since, args.until)
    options = Options(settings, reference, window, keep_unsupported=args.show_unsupported)
    stdin: BinaryIO = sys.stdin.buffer
    with ExitStack() as stack:
        if args.trace is not None:
            if "-" in names:  # two passes: keep stdin in a temporary file
                spool = stack.enter_context(tempfile.NamedTemporaryFile(prefix="mailprobe-"))
                shutil.copyfileobj(stdin, spool)
                spool.flush()
                names = [spool.name if n == "-" else n for n in names]
            parts = [Part(Path(n)) for n in names]
            found = trace(parts, stdin, options, args.trace)
            return _print_trace(args.trace, found, args.format, reference)
        jobs = max(1, args.jobs)
        parts = [Part(None) if n == "-" else p for n in names for p in _parts(n, jobs)]
        analysis = _with_progress(parts, stdin, options, jobs, paths)
    report = build(analysis)
    if not report["lines"]["postfix_lines"]:
        print(f"mailprobe logs: {_nothing_found(report['lines'])}", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        _print_report(report, analysis.unsupported, args)
    except BrokenPipeError:  # `mailprobe logs ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a log, in words that say what to do; None if it can.

    Only regular files are read: a FIFO or a device could block the read for ever
    (pipe those into stdin instead).
    """
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return "is a directory: name the log files in it (e.g. DIR/mail.log*)"
        if not stat.S_ISREG(mode):
            return f"is not a regular file: pipe it into stdin instead (mailprobe logs - < {path})"
        with path.open("rb"):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return "no such file: check the path (Postfix often logs to /var/log/mail.log)"
    except PermissionError:
        return (
            "permission denied: run as a user who may read it (root, or a member of the"
            " group that owns it, often adm)"
        )
    except OSError as error:
        return f"cannot open it: {error.strerror or error}"


def _nothing_found(lines: dict[str, int]) -> str:
    """What to say when no line of the input came from Postfix."""
    total, outside = lines["total"], lines["outside_window"]
    if not total:
        return "the input is empty: no Postfix line found"
    if outside == total:
        return f"no Postfix line found between --since and --until ({total} lines outside)"
    return (
        f"no Postfix line found in {total} lines: is this a Postfix mail log? (syslog"
        " lines from postfix/smtpd, postfix/qmgr and the like, or their journal)"
    )


def _print_report(report: dict[str, Any], unsupported: list[str], args: argparse.Namespace) -> None:
    if args.format == "json":
        if args.show_unsupported:
            report["unsupported_lines"] = unsupported
        print(json.dumps(report, indent=2))
    else:
        for line in render_text(report):
            print(line)
        if args.show_unsupported and unsupported:
            print("\nUnsupported lines\n-----------------")
            for line in unsupported:
                print(line)


def _parts(name: str, jobs: int) -> list[Part]:
    return [Part(None)] if name == "-" else split([Path(name)], jobs)


def _with_progress(
    parts: list[Part], stdin: BinaryIO, options: Options, jobs: int, paths: list[Path]
) -> Analysis:
    size = total_bytes(paths)
    if not sys.stderr.isatty() or size < PROGRESS_MIN_BYTES:
        return analyse(parts, stdin, options, jobs)
    progress = Progress(
        TextColumn("reading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("logs", total=size)
    with progress:
        return analyse(parts, stdin, options, jobs, lambda n: progress.advance(task, n))


def _print_trace(wanted: str, lines: list[TraceLine], fmt: str, reference: float) -> int:
    clock = Clock(lambda: reference)
    times = [clock.epoch(line.stamp) for line in lines]
    start = next((t for t in times if t is not None), None)
    rows = [
        {
            "time": None if t is None else datetime.fromtimestamp(t).astimezone().isoformat(),
            "offset_seconds": None if t is None or start is None else round(t - start, 6),
            "service": line.service,
            "daemon": line.daemon,
            "queue_id": line.qid,
            "kind": line.kind.name.lower(),
            "message": line.message,
        }
        for line, t in zip(lines, times, strict=True)
    ]
    queue_ids = list(dict.fromkeys(line.qid for line in lines if line.qid))
    if fmt == "json":
        print(json.dumps({"id": wanted, "queue_ids": queue_ids, "lines": rows}, indent=2))
    elif rows:
        print(f"Trace of {wanted}: " + " -> ".join(_hops(lines)))
        for row in rows:
            offset = "" if row["offset_seconds"] is None else f"+{row['offset_seconds']:.3f}s"
            print(
                f"  {row['time'] or '-':<32} {offset:>10}  {row['service']:<10}"
                f" {row['daemon']:<8} {row['message']}"
            )
    else:
        print(f"mailprobe logs: no lines for {wanted}", file=sys.stderr)
    return 0 if rows else EXIT_NOT_FOUND


def _hops(lines: list[TraceLine]) -> list[str]:
    """``service(queue ID)`` per queue ID, in the order they first appear."""
    seen: dict[str, str] = {}
    for line in lines:
        if line.qid and line.qid not in seen:
            seen[line.qid] = f"{line.service}({line.qid})"
    return list(seen.values())
