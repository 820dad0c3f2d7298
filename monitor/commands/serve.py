"""``mailprobe serve``: run the checks on their schedules and serve /metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from monitor.checks import unchecked_sections
from monitor.commands.common import EXIT_CANNOT_RUN, add_config_option, config_path, load_or_report
from monitor.config import parse_listen
from monitor.server.daemon import DEFAULT_GRACE_SECONDS, Daemon


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="run checks on their schedules and serve /metrics until stopped"
    )
    add_config_option(parser)
    parser.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        type=_listen,
        help="address to serve on (default: 'listen' from the config, 127.0.0.1:9974)",
    )
    parser.add_argument(
        "--grace",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_GRACE_SECONDS,
        help="on SIGTERM, how long checks in flight may finish (default: %(default)g)",
    )
    parser.set_defaults(func=_serve)


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in 0..3600")
    return value


def _serve(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_CANNOT_RUN
    for note in unchecked_sections(config):
        logging.getLogger(__name__).warning(note)
    daemon = Daemon(config_path(args.config), config, args.listen, args.grace)
    return asyncio.run(daemon.run())
