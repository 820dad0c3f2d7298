"""``mailprobe lab up|down|status|config|faults|break|heal``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.lab import faults as F
from monitor.lab.lab import Lab, LabError
from monitor.lab.mailconfig import config_yaml

DIR_ENV = "MAILPROBE_LAB_DIR"
EXIT_CANNOT_RUN = 3


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``lab`` command to a parent parser's subparsers."""
    lab: argparse.ArgumentParser = subparsers.add_parser(
        "lab",
        help="start, stop and break the local test fleet",
        description="A real miniature mail fleet on this machine (needs root).",
    )
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text
        )
        parser.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get(DIR_ENV, "lab-state")),
            help=f"the lab's folder (default ./lab-state or ${DIR_ENV})",
        )
        return parser

    up = command("up", "write every config under DIR, start everything, wait until it answers")
    up.add_argument("--net", help="address block, a /24 in 127.0.0.0/8 (default 127.77.0.0/24 "
                    "or $MAILPROBE_LAB_NET)")  # fmt: skip
    up.add_argument("--domain", help="the fleet's domain (default example.test)")
    up.add_argument("--world", help="the outside world's domain (default world.test)")
    up.set_defaults(func=_guarded(_up))
    down = command("down", "stop every lab process and remove its addresses")
    down.set_defaults(func=_guarded(_down))
    status = command("status", "each service, its address, up or down; exit 0 if all up")
    status.set_defaults(func=_guarded(_status))
    config = command("config", "print a mailprobe config that watches the lab")
    config.set_defaults(func=_guarded(_config))
    command("faults", "list the named faults").set_defaults(func=_guarded(_faults))
    for verb, handler, text in (
        ("break", _break, "break one named fault"),
        ("heal", _heal, "undo one named fault"),
    ):
        parser = command(verb, text)
        parser.add_argument("fault", help="fault name (see `lab faults`)")
        parser.set_defaults(func=_guarded(handler))
    return lab


Handler = Callable[[argparse.Namespace], int]


def _guarded(handler: Handler) -> Handler:
    """Lab errors become one line on stderr and exit code 3 (cannot run)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except LabError as exc:
            print(f"mailprobe lab: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN

    return run


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(
        args.dir,
        net=getattr(args, "net", None),
        domain=getattr(args, "domain", None),
        world=getattr(args, "world", None),
    )


def _up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    result = lab.up()
    if result.already_running:
        print(f"lab in {lab.dir} is already running (net {lab.net}); nothing changed")
        return 0
    _print_status(lab)
    print(f"lab up in {result.seconds:.2f} s: dir {lab.dir}, net {lab.net}, CA {lab.ca_file}")
    return 0


def _down(args: argparse.Namespace) -> int:
    lab = _lab(args)
    stopped = lab.down()
    print(f"lab down: {len(stopped)} processes stopped, addresses of {lab.net} removed")
    return 0


def _print_status(lab: Lab) -> bool:
    rows = lab.status()
    width = max(len(r.name) for r in rows)
    for row in rows:
        state = "up" if row.up else "DOWN"
        print(f"{row.name:<{width}}  {state:<4}  {row.host:<24} {row.endpoints}")
    faults = lab.active_faults()
    if faults:
        print("active faults: " + ", ".join(faults))
    return all(r.up for r in rows)


def _status(args: argparse.Namespace) -> int:
    lab = _lab(args)
    state = lab.state()
    if state is None or not state.running:
        print(f"no lab running in {lab.dir}")
        return 1
    return 0 if _print_status(lab) else 1


def _config(args: argparse.Namespace) -> int:
    lab = _lab(args)
    state = lab.state()
    if state is None or not state.running:
        raise LabError(f"no lab running in {lab.dir}; the config names its files")
    sys.stdout.write(config_yaml(lab))
    return 0


def _faults(args: argparse.Namespace) -> int:
    for fault in F.FAULTS:
        print(f"{fault.name}\n    breaks: {fault.breaks}\n    a good monitor says: "
              f"{fault.monitor_should_say}")  # fmt: skip
    return 0


def _break(args: argparse.Namespace) -> int:
    _lab(args).break_fault(args.fault)
    print(f"broken: {args.fault}")
    return 0


def _heal(args: argparse.Namespace) -> int:
    _lab(args).heal_fault(args.fault)
    print(f"healed: {args.fault}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m monitor.lab ARGS`` is ``mailprobe lab ARGS``."""
    parser = argparse.ArgumentParser(prog="mailprobe")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code
