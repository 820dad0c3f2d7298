"""Pieces several subcommands share: the --config option and loading it.

``monitor.config`` (pydantic models for every section) is imported only when a config
is loaded: ``mailprobe logs`` without a config file starts without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import Config, ConfigError

EXIT_CANNOT_RUN = 3
DEFAULT_CONFIG_PATH = Path("/etc/mailprobe/mailprobe.yml")


def config_path(explicit: str | Path | None) -> Path:
    """``--config``, else ``$MAILPROBE_CONFIG``, else the default path."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("MAILPROBE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


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


def config_origin(explicit: str | Path | None) -> str:
    """How :func:`config_path` chose its answer, in the user's words."""
    if explicit is not None:
        return "given with --config"
    if os.environ.get("MAILPROBE_CONFIG"):
        return "named by $MAILPROBE_CONFIG"
    return "the default; neither --config nor $MAILPROBE_CONFIG names another"


def print_missing_config(path: Path, explicit: str | Path | None) -> None:
    """The config file does not exist: say where we looked and how to name one."""
    print(
        f"mailprobe: no config file at {path} ({config_origin(explicit)})\n"
        "  name one with --config FILE or MAILPROBE_CONFIG=FILE\n"
        "  (examples/mailprobe.yml is a commented example; `mailprobe lab config` prints"
        " one for the lab)",
        file=sys.stderr,
    )


def load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the config named by ``args``; on error print every problem and return None."""
    from monitor.config import ConfigError, load_config

    path = config_path(args.config)
    if not path.exists() and not path.is_symlink():
        print_missing_config(path, args.config)
        return None
    if path.is_dir():
        print(
            f"mailprobe: {path} ({config_origin(args.config)}) is a folder: name the config"
            " file itself",
            file=sys.stderr,
        )
        return None
    try:
        return load_config(path)
    except ConfigError as error:
        print_config_error(error)
        return None
