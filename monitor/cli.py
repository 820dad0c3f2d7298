"""The ``mailprobe`` command line: one subcommand per face, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from monitor import __version__
from monitor.commands.common import EXIT_CANNOT_RUN
from monitor.logsetup import setup_logging

SUBCOMMANDS = {
    "run": "monitor.commands.run",
    "serve": "monitor.commands.serve",
    "config": "monitor.commands.config_check",
    "lab": "monitor.lab.cli",
    "logs": "monitor.commands.logs",
    "dmarc": "monitor.commands.dmarc",
}
"""Subcommand -> the module that registers it. Only the module of the command being
run is imported (``mailprobe logs`` does not load the web server, the DNS checks or
the lab: half a second of start-up); ``--help`` imports them all."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 3 (cannot run) instead of 2.

    Nagios reads 2 from a plugin as CRITICAL: ``mailprobe run --only nonsense`` must not
    page anyone as if the mail were down (docs/run.md). Every subcommand uses 3 for "could
    not run", so all of them share this parser class (argparse gives subparsers the
    class of their parent).
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_CANNOT_RUN, f"{self.prog}: error: {message}\n")


DEFAULT_LOG_LEVEL = {"serve": "info"}
"""The daemon logs what it does; a one-shot command (``run`` under Nagios, ``config
check``) says what it found on stdout, and its stderr carries only warnings and worse."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="mailprobe",
        description="Delivery monitor and Prometheus exporter for Postfix mail fleets.",
    )
    parser.add_argument("--version", action="version", version=f"mailprobe {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="stderr log level (logfmt lines; default: info for serve, warning otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(subparsers)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (after the global options), if it is known."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--log-level")
    _known, rest = pre.parse_known_args(argv)
    first = next((arg for arg in rest if not arg.startswith("-")), None)
    return first if first in SUBCOMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    setup_logging(args.log_level or DEFAULT_LOG_LEVEL.get(args.command, "warning"))
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A bug, not a finding: the traceback to report it, and 3 (unknown) rather than
        # Python's 1, which Nagios would read from `run` as WARNING.
        traceback.print_exc()
        print("mailprobe: internal error (a bug); please report the traceback above",
              file=sys.stderr)  # fmt: skip
        return EXIT_CANNOT_RUN
    sys.stdout.flush()
    return code
