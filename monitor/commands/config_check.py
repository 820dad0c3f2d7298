"""``mailprobe config check``: validate a config and name every bad key."""

from __future__ import annotations

import argparse
from typing import Any

from monitor.checks import unchecked_sections
from monitor.commands.common import EXIT_CANNOT_RUN, add_config_option, config_path, load_or_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="work with the config file")
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a config; exit 0 if valid, 3 if not")
    add_config_option(check)
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_CANNOT_RUN
    print(f"{config_path(args.config)}: ok")
    for note in unchecked_sections(config):
        print(f"  {note}")
    return 0
