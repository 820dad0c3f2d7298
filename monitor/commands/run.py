"""``mailprobe run``: every configured check once, a report, a Nagios exit code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from exporters.result import Check, CheckResult, Kind
from monitor.checks import (
    BUILDERS,
    build_checks,
    canary,
    checked_kinds,
    no_checks_reason,
    unchecked_sections,
)
from monitor.commands.common import EXIT_CANNOT_RUN, add_config_option, load_or_report
from monitor.report import exit_code, print_table, table_console, to_json
from monitor.runner import run_all


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run every configured check once",
        description="Run every configured check once and print a report.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser)
    unchecked = [k.value for k in Kind if k not in checked_kinds()]
    parser.add_argument(
        "--only",
        metavar="KINDS",
        type=_kinds,
        help="comma-separated kinds to run: "
        + ",".join(k.value for k in checked_kinds())
        + (f" ({', '.join(unchecked)}: no checks)" if unchecked else ""),
    )
    parser.add_argument("--target", metavar="NAME", help="run only checks of this target")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(func=_run)


EXIT_CODES = """\
exit codes (Nagios plugin convention, docs/run.md):
  0  every check ok
  1  at least one warn, none worse
  2  at least one fail (critical)
  3  unknown: a check could not run (error), the config is missing or invalid, no
     check matched, or the command line is wrong
"""


def _kinds(text: str) -> list[Kind]:
    try:
        return [Kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown kind in {text!r}; known: {','.join(k.value for k in Kind)}"
        ) from None


def _run(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_CANNOT_RUN
    if args.only:
        for kind in args.only:
            if kind not in BUILDERS:
                print(f"mailprobe: --only {kind}: {no_checks_reason(kind)}", file=sys.stderr)
    else:
        for note in unchecked_sections(config):
            print(f"mailprobe: {note}", file=sys.stderr)
    checks = build_checks(config, only=args.only, target=args.target)
    if not checks:
        print("mailprobe: no checks match the config and filters", file=sys.stderr)
        return EXIT_CANNOT_RUN
    started = datetime.now(UTC)
    results = asyncio.run(_run_with_progress(checks, config.defaults.concurrency))
    if args.format == "json":
        print(to_json(results, started))
    else:
        print_table(results, table_console())
    return exit_code(results)


async def _run_with_progress(checks: Sequence[Check], concurrency: int) -> list[CheckResult]:
    """Show a progress bar on a terminal only; piped output stays clean."""
    if not sys.stderr.isatty():
        return await run_all(checks, concurrency)
    progress = Progress(
        TextColumn("checks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("", total=len(checks))
    canary_state: dict[str, str] = {}

    def canary_progress(route: str, text: str) -> None:
        canary_state[route] = text
        shown = "; ".join(f"{r}: {t}" for r, t in canary_state.items())
        progress.update(task, description=f"canary {shown}")

    canary.on_progress(canary_progress)
    try:
        with progress:
            return await run_all(
                checks, concurrency, on_done=lambda _result: progress.advance(task)
            )
    finally:
        canary.on_progress(None)
