"""Pieces several subcommands share: the --config option and loading it."""

from __future__ import annotations

import argparse
import sys

from monitor.config import Config, ConfigError, config_path, load_config

EXIT_CANNOT_RUN = 3


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="config file (default: $MAILPROBE_CONFIG or /etc/mailprobe/mailprobe.yml)",
    )


def print_config_error(error: ConfigError) -> None:
    print(f"{error.source}: invalid config", file=sys.stderr)
    for issue in error.issues:
        print(f"  {issue}", file=sys.stderr)


def load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the config named by ``args``; on error print every problem and return None."""
    try:
        return load_config(config_path(args.config))
    except ConfigError as error:
        print_config_error(error)
        return None
