"""The ``mailprobe`` command line: one subcommand per face, each in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.commands import config_check, run, serve
from monitor.lab import cli as lab
from monitor.logs import command as logs
from monitor.logsetup import setup_logging

SUBCOMMANDS = (run, serve, config_check, lab, logs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailprobe",
        description="Delivery monitor and Prometheus exporter for Postfix mail fleets.",
    )
    parser.add_argument("--version", action="version", version=f"mailprobe {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="stderr log level (logfmt lines)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    return code
