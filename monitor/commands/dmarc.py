"""``mailprobe dmarc import PATH...`` and ``mailprobe dmarc report``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from monitor.commands.common import EXIT_CANNOT_RUN, add_config_option, load_or_report

EXIT_SOME_INVALID = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dmarc",
        help="import DMARC/TLS-RPT reports, or print the DMARC readiness report",
        description="DMARC aggregate, failure (ARF) and TLS-RPT reports (docs/dmarc.md).",
    )
    commands = parser.add_subparsers(dest="dmarc_command", required=True, metavar="COMMAND")
    importing = commands.add_parser(
        "import",
        help="import report files (xml, xml.gz, zip, json, eml, mbox, folders of them)",
        description="Import report files into the state file. Files already imported change"
        " nothing; reports already stored count as duplicates; bad reports are refused with"
        " a reason and the others still imported.",
    )
    importing.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    add_config_option(importing)
    importing.add_argument("--format", choices=["text", "json"], default="text")
    importing.set_defaults(func=_import)
    reporting = commands.add_parser(
        "report",
        help="what p=quarantine / p=reject would do, by source class and source",
        description="The readiness report: per domain and source class, messages passing"
        " and failing DMARC, SPF and DKIM alignment, what a stricter policy would do to"
        " legitimate mail, and a verdict with its blockers.",
    )
    add_config_option(reporting)
    reporting.add_argument(
        "--days",
        type=int,
        default=None,
        help="reports that ended this many days back (default: dmarc.window_days)",
    )
    reporting.add_argument("--format", choices=["text", "json"], default="text")
    reporting.add_argument(
        "--no-dns", action="store_true", help="do not look up PTR names of the sources"
    )
    reporting.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_CANNOT_RUN
    if not config.dmarc.domains:
        print("dmarc.domains is empty: nothing to report on", file=sys.stderr)
        return EXIT_CANNOT_RUN
    days = args.days if args.days is not None else config.dmarc.window_days
    if days < 1:
        print("--days must be 1 or more", file=sys.stderr)
        return EXIT_CANNOT_RUN
    from monitor.dmarc.report import build_report, render_text

    report = asyncio.run(build_report(config, days, lookup_ptr=not args.no_dns))
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        sys.stdout.write(render_text(report))
    return 0


def _import(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EXIT_CANNOT_RUN
    if not config.dmarc.domains:
        print("dmarc.domains is empty: no report would be ours", file=sys.stderr)
        return EXIT_CANNOT_RUN
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    from monitor.dmarc.importing import import_paths

    results = asyncio.run(import_paths(config, list(args.paths)))
    outcomes = Counter(r.outcome.value for r in results)
    refused = [r for r in results if r.reason is not None]
    if args.format == "json":
        json.dump(
            {
                "items": len(results),
                "outcomes": dict(sorted(outcomes.items())),
                "refused": [
                    {
                        "origin": r.origin,
                        "reason": r.reason.value if r.reason else "",
                        "detail": r.detail,
                        "outcome": r.outcome.value,
                    }
                    for r in refused
                ],
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print(
            f"{len(results)} item(s): " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        )
        for r in refused:
            print(f"  {r.outcome.value}: {r.origin}: {r.detail}")
    return EXIT_SOME_INVALID if outcomes.get("invalid") else 0
